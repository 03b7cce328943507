/* Instrumented copy of lib/peer.c for the fuzz targets (see Makefile.am). */
#include "peer.c"
