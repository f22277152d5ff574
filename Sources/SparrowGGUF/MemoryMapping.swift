#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when released.
///
/// Pages are read lazily by the kernel, so opening a multi-gigabyte model costs nothing until
/// its bytes are touched.
final class MemoryMapping: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw GGUFError("no such file: \(path)") }
            throw GGUFError("cannot open \(path): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw GGUFError("cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError("not a regular file: \(path)")
        }
        let size = Int(status.st_size)
        guard size > 0 else { throw GGUFError("\(path): not a GGUF file (the file is empty)") }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              mapped != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            throw GGUFError("cannot map \(path) into memory: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        self.size = size
    }

    /// Drops the resident pages of the bytes at `start..<start + count` (those whole pages
    /// inside it): the memory is given back, and a later read would page them in again.
    func release(_ start: UnsafeRawPointer, count: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (Int(bitPattern: start) + page - 1) / page * page, end = (Int(bitPattern: start) + count) / page * page
        guard end > first, let p = UnsafeMutableRawPointer(bitPattern: first) else { return }
        madvise(p, end - first, Int32(MADV_DONTNEED))
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }
}
