/* CPQ: the system libpq (PostgreSQL client), for `memgatectl audit pull --into postgresql://`. No logic lives here. */
#ifndef CPQ_H
#define CPQ_H
#include <postgresql/libpq-fe.h>
#endif
