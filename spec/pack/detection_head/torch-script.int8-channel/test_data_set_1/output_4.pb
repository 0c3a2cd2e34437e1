B
top_logitsJP~VGA/Ã,AL&A.ù A¤NA/)Ag˜A'ŽA·[AnÊAµ{DAû,Aßæ#A¢ˆAøœAyz¸AM³>AÅ¦:Ay?7AÆA