/* Instrumented copy of lib/wakeup.c for the fuzz targets (see Makefile.am). */
#include "wakeup.c"
