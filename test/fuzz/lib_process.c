/* Instrumented copy of lib/process.c for the fuzz targets (see Makefile.am). */
#include "process.c"
