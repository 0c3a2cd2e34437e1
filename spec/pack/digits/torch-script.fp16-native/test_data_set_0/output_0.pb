

BlogitsJ'ÄªÂEË¤ÌÊJ¸Çi=ŠA½¿Ê