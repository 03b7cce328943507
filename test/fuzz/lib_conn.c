/* Instrumented copy of lib/conn.c for the fuzz targets (see Makefile.am). */
#include "conn.c"
