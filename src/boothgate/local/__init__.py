"""The offline engine behind the `local` tab: background, styles and face swap on the booth's own CPU.

Models ship inside the mediapipe 0.10.21 wheel (nothing is downloaded at run time); OpenCV does the
rest. Modules: `models` (lazy loading), `pixels` (decode/encode/resize), `faces`, `background`,
`styles`, `face_swap`, and `engine` (the one function image workers run).

May import the base modules only.
"""
