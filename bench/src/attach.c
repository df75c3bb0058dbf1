// SPDX-License-Identifier: Apache-2.0
/*
 * attach: load a BPF object file, attach every program in it (libbpf auto-attach by section
 * name), print "attached" and wait until killed; the kernel detaches the links when the
 * process exits. The benchmark's loader for the empty-program floor (bench/src/empty.bpf.c).
 */
#include <stdio.h>
#include <unistd.h>
#include <bpf/libbpf.h>

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	int attached = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: attach OBJECT.bpf.o\n");
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || libbpf_get_error(obj)) {
		fprintf(stderr, "attach: cannot open %s\n", argv[1]);
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "attach: cannot load %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "attach: cannot attach %s\n", bpf_program__name(prog));
			return 1;
		}
		printf("attached %s (%s)\n", bpf_program__name(prog), bpf_program__section_name(prog));
		attached++;
	}
	printf("attached %d program(s)\n", attached);
	fflush(stdout);
	for (;;)
		pause();
}
