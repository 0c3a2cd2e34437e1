
B	top_boxesJ(ÊÂ63~CEk?lÂ]8=ì6Hè?	F¡Á¡En5â:~­ñ;ÿ6é<