// Tiny header-only wrappers around x86 intrinsics Swift cannot express (int8 dot products).
#pragma once
