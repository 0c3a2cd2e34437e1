B
Identity:0Jc+Û¿Ê·ÀIO¶¿uEÂ¿