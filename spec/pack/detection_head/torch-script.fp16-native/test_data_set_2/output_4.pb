
B
top_logitsJBX$UîTÁTrTıTŞTÄTWTT