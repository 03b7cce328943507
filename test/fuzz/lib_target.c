/* Instrumented copy of lib/target.c for the fuzz targets (see Makefile.am). */
#include "target.c"
