#include "CSparrowSIMD.h"
