/* Instrumented copy of lib/compress.c for the fuzz targets (see Makefile.am). */
#include "compress.c"
