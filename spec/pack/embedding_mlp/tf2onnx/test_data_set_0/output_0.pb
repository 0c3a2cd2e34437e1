B
Identity:0Jc+ۿ