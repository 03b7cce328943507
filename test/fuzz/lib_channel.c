/* Instrumented copy of lib/channel.c for the fuzz targets (see Makefile.am). */
#include "channel.c"
