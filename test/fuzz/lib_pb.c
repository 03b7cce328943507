/* Instrumented copy of lib/pb.c for the fuzz targets (see Makefile.am). */
#include "pb.c"
