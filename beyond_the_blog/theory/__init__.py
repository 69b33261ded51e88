"""The theory, in float64: what the best fit is and why gradient descent gets where it gets.

    least_squares  the best possible fit, its standard errors, the design's condition number
    curvature      the loss Hessian's largest eigenvalue (2/lambda_max), the params bowl's and the product's Hessians
    diagnosis      each model's diagnosis of a finished fit: eigenvalues, exact arithmetic, float32's spacing
    bowl           --landscape's geometry: the bowl's eigen-axes and a run's path on them
    valley         the product's valley of equal fits, and the lr limit where a run ends on it
"""
