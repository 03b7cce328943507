/* Instrumented copy of lib/frame.c for the fuzz targets (see Makefile.am). */
#include "frame.c"
