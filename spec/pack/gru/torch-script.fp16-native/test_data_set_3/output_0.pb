

BlogitsJ(ศ=þฤ๎BsA๐7ฌAซฎuปwบาภทยกAYยzผทภ…8ฌธv:จฐ_3