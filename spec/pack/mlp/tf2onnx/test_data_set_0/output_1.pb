
BIdentity_1:0J(bÜ“=F¥ü<Ú;SD?aJq;è=H~…<:ıF=FÁ<~®;