
B
top_logitsJ
;JfI2IIBH