
BprobabilityJä0