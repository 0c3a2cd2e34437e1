B
Identity:0J dà{ÀóüÀî¾CÁ÷QmÁs ÀY¿é?AÓ¡@±iÁ