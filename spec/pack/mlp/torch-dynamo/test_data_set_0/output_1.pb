
BprobsJ(bÜ“=F¥ü<Úž;SD?aJq;è=H~…<:ýF=FÁ<~®Ž;