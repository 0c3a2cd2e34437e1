

BlogitsJß·["Û·¸i­ß;¹ú¹B7c»