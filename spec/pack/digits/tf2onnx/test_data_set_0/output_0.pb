
B
Identity:0J(=é„ÀENUÀ5‘hÁÏt”Á 7YA‡ğöÀ5+­?Ñ91@‚¯÷¿»®BÁ