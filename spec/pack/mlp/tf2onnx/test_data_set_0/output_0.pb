
B
Identity:0J(bUÓ?CëL?Oì¿Tg€@`˜©¿ÐìY?Ïm&>¼Ÿ ?/?/”¿