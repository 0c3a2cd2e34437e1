"""How outputs are judged: tolerance policy and error statistics."""
