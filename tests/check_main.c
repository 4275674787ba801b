/*
 * The one test runner: every tests/check_<module>.c provides a
 * <module>_suite(). Arguments name the suites to run (all by default), so
 * the ThreadSanitizer build can run only the threaded ones.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weak, so a module's suite can be built and run on its own. */
#define SUITES(X) X(config) X(log) X(event) X(queue) X(store) \
	X(writer) X(metrics) X(e2e) X(callhook) X(auth) X(faults) X(deploy)
#define DECLARE(name) Suite *name##_suite(void) __attribute__((weak));
SUITES(DECLARE)

struct entry {
	const char	*name;
	Suite		*(*make)(void);
};

static int
wanted(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

int
main(int argc, char **argv)
{
#define ENTRY(name) { #name, name##_suite },
	const struct entry all[] = { SUITES(ENTRY) };
	SRunner *sr = NULL;
	int failed;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (all[i].make == NULL || !wanted(all[i].name, argc, argv))
			continue;
		if (sr == NULL)
			sr = srunner_create(all[i].make());
		else
			srunner_add_suite(sr, all[i].make());
	}
	if (sr == NULL) {
		fprintf(stderr, "check_all: no such suite\n");
		return 2;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
