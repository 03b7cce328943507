/* Instrumented copy of lib/registry_zk.c for the fuzz targets (see Makefile.am). */
#include "registry_zk.c"
