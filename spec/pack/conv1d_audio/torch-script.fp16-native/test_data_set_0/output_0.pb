
BlogitsJ฿ร่วสkหลN?Ekศ