
BlogitsJ(BÝû¾€jK<*[û¾Ÿr¿*­½Ö{?9¨!¿B5?¿gAè>)dl¿