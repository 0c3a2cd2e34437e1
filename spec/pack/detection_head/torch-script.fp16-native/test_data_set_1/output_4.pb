
B
top_logitsJ(;JfI2IIBHII½H¼H«H~H$J`IIìHÝHÄMöIÕIºIèH