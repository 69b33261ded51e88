"""What a person reads: nothing here trains.

    text              everything printed besides the blog's lines and the explanations
    explain           the printed prose: why the fit is where it is, why a run diverged
    figures           the figures, the GIF and the sweep's figure; matplotlib loads only when one is drawn
    landscape_figure  --landscape: the bowl with the path, the error along each eigenvector
    explorer_page     --explore's page: its data, four plotly panels, the controls' script (explorer_page.js)
"""
