"""
Fits the polynomial of the SIMD tables' tanh (native/core/forward/forward_math.h, tanh_poly), used by Gemma 2's
soft-capping: tanh(y) = y + y^3 * Q(y^2) for |y| < 0.625, Q a degree-5 least-squares fit on Chebyshev nodes in
s = y^2 of (tanh(y) - y) / y^3 (its Taylor series where y is small, so the quotient does not cancel). Prints the
worst ulp of the kernel's fp32 evaluation (Horner in s, then q * y^3 + y, each step rounded as an FMA rounds it)
against fp64 tanh, and the constants, highest degree first, as forward_math.h holds them.

Needs numpy; run with python3 scripts/fit-tanh.py. Not used by any test.
"""
import numpy as np

f32 = np.float32
Y_MAX = 0.625
DEGREE = 5

nodes = 6000
k = np.arange(nodes)
s = (Y_MAX * Y_MAX) * (np.cos((2 * k + 1) * np.pi / (2 * nodes)) + 1) / 2
y = np.sqrt(s)
q = np.empty_like(s)
small = y < 0.05
q[small] = -1 / 3 + 2 / 15 * s[small] - 17 / 315 * s[small] ** 2 + 62 / 2835 * s[small] ** 3
q[~small] = (np.tanh(y[~small]) - y[~small]) / y[~small] ** 3
fit = np.polynomial.chebyshev.Chebyshev.fit(s, q, DEGREE, domain=[0, Y_MAX * Y_MAX])
coefficients = fit.convert(kind=np.polynomial.Polynomial).coef.astype(f32)

yy = np.linspace(0, Y_MAX, 200001).astype(f32)[1:]
ss = (yy * yy).astype(f32)
p = f32(coefficients[-1])
for c in coefficients[-2::-1]:
    p = f32(np.float64(p) * np.float64(ss) + np.float64(c))
cube = (ss * yy).astype(f32)
tanh32 = f32(np.float64(p) * np.float64(cube) + np.float64(yy))
exact = np.tanh(yy.astype(np.float64))
ulp = np.abs(tanh32.astype(np.float64) - exact) / np.spacing(exact.astype(f32)).astype(np.float64)
print("worst ulp", np.max(ulp))
print("kQ", ", ".join("%.9ef" % c for c in coefficients[::-1]))
