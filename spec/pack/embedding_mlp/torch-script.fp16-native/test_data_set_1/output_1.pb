
BprobabilityJä0 -52Á1