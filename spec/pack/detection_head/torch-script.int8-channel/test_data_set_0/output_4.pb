B
top_logitsJ~VGA/Ã,AL&A.ù A¤NA