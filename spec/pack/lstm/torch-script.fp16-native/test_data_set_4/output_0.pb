

BlogitsJø¶¨B4E9¶»’·€8?4š´lµ