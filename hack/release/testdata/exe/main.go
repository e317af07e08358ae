// Command exe does nothing: the tests cross-compile it for the platforms
// they do not build tls-check for (every further GOOS/GOARCH of tls-check
// is a cold compile of its whole dependency tree), to check the archives
// and krew manifest entries of those platforms with real executables.
package main

func main() {}
