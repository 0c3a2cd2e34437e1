

BlogitsJlBJêHœÂ™424K
ÈªH Å