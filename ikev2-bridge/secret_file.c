/* secret_file.c - files that hold keys: created 0600, replaced atomically, the old content
 * overwritten with zeros before it goes (see bridge_drivers.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge_drivers.h"

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Zero the content in place (same inode), then fsync. */
static int zero_file(const char *path, qk_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : qk_err_set(err, QK_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qk_err_set(err, QK_EIO, "%s is not a regular file", path);
    }
    static const char zeros[4096];
    off_t left = st.st_size;
    int rc = 0;
    while (left > 0 && rc == 0) {
        size_t n = left > (off_t)sizeof zeros ? sizeof zeros : (size_t)left;
        rc = write_all(fd, zeros, n);
        left -= (off_t)n;
    }
    if (rc == 0)
        rc = fsync(fd);
    close(fd);
    if (rc)
        return qk_err_set(err, QK_EIO, "wiping %s: %s", path, strerror(errno));
    return 0;
}

int secret_file_wipe(const char *path, qk_err *err)
{
    int rc = zero_file(path, err);
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return qk_err_set(err, QK_EIO, "unlink %s: %s", path, strerror(errno));
    return 0;
}

int secret_file_replace(const char *path, const char *data, size_t len, qk_err *err)
{
    char tmp[600];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return qk_err_set(err, QK_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        qk_err e;
        secret_file_wipe(tmp, &e); /* left over from a crash: it may hold keys */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0)
        return qk_err_set(err, QK_EIO, "create %s: %s", tmp, strerror(errno));
    if (fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        qk_err w;
        secret_file_wipe(tmp, &w);
        return qk_err_set(err, QK_EIO, "write %s: %s", tmp, strerror(e));
    }
    close(fd);
    int rc = zero_file(path, err); /* the old keys do not survive in the old inode */
    if (rc) {
        qk_err w;
        secret_file_wipe(tmp, &w);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        qk_err w;
        secret_file_wipe(tmp, &w);
        return qk_err_set(err, QK_EIO, "rename %s: %s", path, strerror(e));
    }
    return 0;
}
