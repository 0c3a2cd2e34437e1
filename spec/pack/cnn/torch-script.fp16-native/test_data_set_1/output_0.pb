

BlogitsJPlBJêHœÂ™424K
ÈªH Å§CcG‹?fÀÂC¼>,E¥Äœ@œÃ AI.H¶Ä6¶²¸fKÆÅxFJÆ±?>FGxÅÀ£¼›JçÂËBŒÅ