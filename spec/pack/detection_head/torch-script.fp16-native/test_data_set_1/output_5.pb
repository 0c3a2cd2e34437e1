
B	top_boxesJ ÊÂ63~CEk?lÂ]8=ì6Hè?	F¡Á¡En5â:~­ñ;ÿ6é<ÊÃgGÝ?Y@uÁÙF¨6†?C>(¹?54—Äm>$;ÔBd½+DG*6G=›4(DBï5½*£DÞDxFBlCü=CÈ©Ea.m9¡@G7³>WÄžD`4½1@BÁ<D5<æE,9ô8	>ž<C;8=Â/wFD