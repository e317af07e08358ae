module example.invalid/exe

go 1.26.0
