
Bdense_featuresJj0¸:P:Ý5	5¿7y/¼£¶Å½>@Ñ»É·