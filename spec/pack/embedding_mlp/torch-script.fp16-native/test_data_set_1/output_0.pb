
BscoreJÙ¾®À²½¾