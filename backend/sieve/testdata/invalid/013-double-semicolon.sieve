keep;;
