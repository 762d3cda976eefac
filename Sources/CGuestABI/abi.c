/* The guest ABI is declarations only; this unit checks they compile for the host. */
#include "memgate_abi.h"
_Static_assert(sizeof(struct mg_boot_info) <= MG_BOOT_INFO_STRIDE, "boot info must fit its stride");
_Static_assert(MG_BOOT_INFO_ADDR + MG_MAX_VCPUS * MG_BOOT_INFO_STRIDE <= MG_PAGE_TABLES_ADDR, "boot infos overlap page tables");
