
BlogitsJP3l9BE
ÀBnÑ½B“{ºÂ>ÕÂíñ
Â½…,CChÍÀB„*¢Â¸AO<ÉBt‚ÜBd“ùÂºm…Âõo¸ÀY6wC¤HSÂÍúÝAÛV²Â