
BlogitsJ(bUÓ?CëL?Oì¿Tg€@`˜©¿ÐìY?Ïm&>¼Ÿ ?/?/”¿