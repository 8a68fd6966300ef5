"""
Fits the polynomial of the SIMD tables' exact gelu (native/core/forward/forward_math.h, gelu_erfc_poly).

erfc(z) = t * exp(-z^2 + P(t - center)) for z >= 0, t = 1 / (1 + z/2). P is a degree-10 least-squares fit, on
Chebyshev nodes in t, of ln(erfc(z) / t) + z^2 over z in [0, 10.5] (past z^2 = 110, gelu rounds to zero in fp32).
The center is an fp32 value, so the kernel's w = t - center is the w of the fit. Prints the fit error, the error of
evaluating P by Horner's rule in fp32 (each step rounded as an FMA rounds it), and the constants, highest degree
first, as forward_math.h holds them.

Needs numpy; run with python3 scripts/fit-gelu-erfc.py. Not used by any test.
"""
import math

import numpy as np

f32 = np.float32
Z_MAX = 10.5
DEGREE = 10
T_MIN = 1 / (1 + Z_MAX / 2)
CENTER = float(f32(0.58))


def target(t):
    z = 2 * (1 / t - 1)
    return np.array([math.log(math.erfc(q)) + q * q for q in z]) - np.log(t)


nodes = 8000
k = np.arange(nodes)
t = T_MIN + (1 - T_MIN) * (np.cos((2 * k + 1) * np.pi / (2 * nodes)) + 1) / 2
fit = np.polynomial.chebyshev.Chebyshev.fit(t - CENTER, target(t), DEGREE, domain=[T_MIN - CENTER, 1 - CENTER])
coefficients = fit.convert(kind=np.polynomial.Polynomial).coef.astype(f32)

dense = np.linspace(T_MIN, 1, 200001).astype(f32).astype(np.float64)
w = (dense.astype(f32) - f32(CENTER)).astype(f32)
horner = f32(coefficients[-1])
for c in coefficients[-2::-1]:
    horner = f32(np.float64(horner) * np.float64(w) + np.float64(c))
exact = target(dense)
print("fit error", np.max(np.abs(fit(dense - CENTER) - exact)))
print("fp32 Horner error", np.max(np.abs(horner.astype(np.float64) - exact)))
print("kCenter", repr(CENTER))
print("kP", ", ".join("%.9ef" % c for c in coefficients[::-1]))
