/*
 * Preloaded into user-mode Linux kernels that save the FPU state with a
 * fixed-size XSAVE buffer (6.1 and older). On hosts whose XSAVE area is
 * larger (AVX-512 and AMX), the host kernel refuses PTRACE_SETREGSET
 * NT_X86_XSTATE unless the buffer has the host's full size (EFAULT), and the
 * guest's first process dies with "ptrace set fp regs failed, errno = 14".
 *
 * This wraps ptrace(): a short NT_X86_XSTATE set reads the tracee's full
 * state first, lays the kernel's bytes over its start, and sets the whole
 * buffer. The part past the short buffer keeps what the host process had,
 * so the guest's programs should not use AVX-512 registers: the test bed
 * turns glibc's AVX-512 string functions off with GLIBC_TUNABLES.
 *
 * Built by `cargo xtask` when the test bed boots such a kernel.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

/* Large enough for any XSAVE layout the host kernel reports today. */
#define FULL_MAX (64 * 1024)

static ptrace_fn real_ptrace(void)
{
	static ptrace_fn fn;
	if (!fn)
		fn = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
	return fn;
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list ap;
	va_start(ap, request);
	pid_t pid = va_arg(ap, pid_t);
	void *addr = va_arg(ap, void *);
	void *data = va_arg(ap, void *);
	va_end(ap);

	ptrace_fn fn = real_ptrace();
	if (request != PTRACE_SETREGSET || (unsigned long)addr != NT_X86_XSTATE)
		return fn(request, pid, addr, data);

	struct iovec *want = data;
	long rc = fn(request, pid, addr, data);
	if (rc == 0 || errno != EFAULT)
		return rc;

	/* One buffer: the kernel's caller is one thread tracing its children. */
	static unsigned char *full;
	if (!full && !(full = malloc(FULL_MAX))) {
		errno = ENOMEM;
		return -1;
	}
	struct iovec got = { .iov_base = full, .iov_len = FULL_MAX };
	if (fn(PTRACE_GETREGSET, pid, addr, &got) < 0)
		return -1;
	if (want->iov_len > got.iov_len) {
		errno = EFAULT;
		return -1;
	}
	memcpy(full, want->iov_base, want->iov_len);
	return fn(PTRACE_SETREGSET, pid, addr, &got);
}
