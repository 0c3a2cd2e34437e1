
BscoreJپ