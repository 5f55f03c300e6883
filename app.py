"""Start the sam2-ui web app (also the entry point of the Hugging Face Space): python app.py --help"""

from apps.web import main

if __name__ == "__main__":
    main()
