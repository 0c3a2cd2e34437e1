
BlogitsJ(1pM@KxCA’IAC~SÀž-“>Òô@>„‚fA¦6Á4A®ò³À